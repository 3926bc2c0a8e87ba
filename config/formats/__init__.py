"""Date formats of the back office, set once (FORMAT_MODULE_PATH): lists, pages and the order timeline agree."""
