"""``python -m avrobust.cli``: the command line."""

if __name__ == "__main__":
    from avrobust.cli import main

    main()
