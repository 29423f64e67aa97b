#!/bin/sh
# SSH_ASKPASS for the e2e tests: ssh runs this with the prompt as $1 and
# reads the answer from stdout. TOTP prompts get $PC_TOTP, every other
# prompt (password) gets $PC_PASSWORD.
case "$1" in
*TOTP*) printf '%s\n' "${PC_TOTP:-}" ;;
*) printf '%s\n' "${PC_PASSWORD:-}" ;;
esac
