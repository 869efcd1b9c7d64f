from openplatform.cli import main

main()
