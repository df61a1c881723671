from eunomia.commands.cli import main

main()
