"""order_state: sales orders, their items, item states and history."""
