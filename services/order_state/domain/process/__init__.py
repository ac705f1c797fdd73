"""Item state machine processes in Spryker's OMS XML dialect: model, loader, plugins, engine."""
