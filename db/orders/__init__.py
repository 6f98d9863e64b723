"""The order domain: placing, confirming and cancelling orders, each in one transaction."""
