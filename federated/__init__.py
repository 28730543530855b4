"""Federated personalization with Flower (see the federated issue); may import device/, never the reverse."""
