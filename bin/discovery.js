#!/usr/bin/env node
// The `discovery` command. Node ≥ 22 runs the TypeScript sources directly (type stripping).
import '../src/cli/main.ts'
