-- renew: the heartbeat of a live consumer. Pushes its lease expiry forward
-- if it still holds one (a lease already reaped stays reaped: its items are
-- back in the queue and belong to whoever gets them next).
-- KEYS: leases; ARGV: consumer id, lease ms. Returns 1 if renewed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
