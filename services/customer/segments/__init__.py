"""Segments: explainable memberships and churn-risk scores, evaluated when a customer's inputs change."""
