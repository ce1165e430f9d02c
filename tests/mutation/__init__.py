"""The curated mutation suite (issue 15): ``python -m tests.mutation`` -- see README.md here."""
