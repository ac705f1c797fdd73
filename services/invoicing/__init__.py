"""invoicing: invoices, the per-store gapless sequence, invoice e-mails and their delivery."""
