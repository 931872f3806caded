"""External validation of a finished study on another cohort (`liver-mm evaluate`)."""
