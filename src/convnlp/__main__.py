from convnlp.cli import main

main()
