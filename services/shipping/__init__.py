"""shipping: shipments, their method, address, date and expense, and which item is in which."""
