"""One module per schema version of the history store, oldest first (`0001_initial.py`)."""
