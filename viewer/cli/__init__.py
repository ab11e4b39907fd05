"""The shmview command line: main(argv) -> int and one module per command group."""
