"""`woodpecker bench`: woodpecker against the tools a user could pick instead, measured in the same run."""
