"""The TRIPOD+AI checklist: its items, the records its answers come from, and the writer."""
