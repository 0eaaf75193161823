-- join: reaps expired leases (so a dead consumer's items go back to the
-- queue even while nobody gets), then reports whether every task is done.
-- Returns {1, -1} when done (and leaves a token so that other joiners wake
-- in turn), else {0, next_expiry} after dropping stale tokens.
-- ARGV: prefix
local now = now_ms()
reap(now)
local u = tonumber(redis.call('HGET', K_META, 'unfinished') or '0')
if u <= 0 then
  if redis.call('LLEN', K_ZERO) == 0 then redis.call('LPUSH', K_ZERO, '1') end
  return {1, -1}
end
redis.call('DEL', K_ZERO)
return {0, next_expiry(now)}
