#!/usr/bin/env bash
# Concurrent logins of one account are answered 409 "the user was changed by another
# request at the same time; retry" — after the password was checked. Each login appends
# RecordLogin to the user's aggregate; concurrent appends collide, Commands::execute retries
# 5 times, then gives up. (Found by scripts/load with a 20-user pool.)
#   deploy/load/repro/login-409.sh target/release/aurora
source "$(dirname "$0")/common.sh"
register dave
for p in 1 4 16 32; do
  echo "$p at once, 300 logins of one account: $(seq 300 | xargs -P "$p" -I{} bash -c 'login dave' | sort | uniq -c | tr -s ' \n' ' ')"
done
