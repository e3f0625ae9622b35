from cityeye.cli import main

raise SystemExit(main())
