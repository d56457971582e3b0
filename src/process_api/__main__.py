from process_api.cli import main

raise SystemExit(main())
