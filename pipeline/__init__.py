"""Invoke tasks that ship releases safely: a pre-deployment checklist, releases, deploys."""
