#!/usr/bin/env node
// The snippets' command: `shopctl <snippet> [args]` (npm run snippet -- <snippet> [args]).
// Needs the compiled CLI: `npm run build` first.
import '../dist/apps/cli/src/main.js';
