from autoremedy.cli import main

raise SystemExit(main())
