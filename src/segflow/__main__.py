from segflow.cli.main import main

main()
