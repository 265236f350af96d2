from aira.cli import main

raise SystemExit(main())
