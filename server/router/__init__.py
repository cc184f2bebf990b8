"""The A/B router: splits prediction traffic between model variants by an exact routing table."""
