from woodpecker.cli import entry

entry()
