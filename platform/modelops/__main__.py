from modelops.cli.main import main

main()
