"""Builders the tests share: customer tokens, signed payment webhooks, placing and paying orders."""
