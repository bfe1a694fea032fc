"""One router per area: the storefront's, the catalog's (operators) and operations."""
