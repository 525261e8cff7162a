"""Analysis: transition fits, figures, reports and the results page."""
