"""weige project package: settings and root URLs, plus the framework-free spatial toolkit."""
