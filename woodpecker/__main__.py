from woodpecker.cli import main

main()
