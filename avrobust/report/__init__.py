"""Pictures and documents for people: frame views, figures, the assessment report."""
