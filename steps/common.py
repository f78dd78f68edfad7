"""Steps shared by every feature (wording reused, never copied)."""
