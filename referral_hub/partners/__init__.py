"""Onboarding partner organisations from the manifests in partners/manifests/."""
