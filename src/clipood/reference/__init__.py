"""Published reference numbers, as package data (``clipood_icml2023.yaml``)."""
