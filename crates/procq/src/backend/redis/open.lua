-- open: creates the queue's metadata if missing, then returns it.
-- ARGV: prefix, kind, fingerprint, maxsize (-1 = "whatever it is", 0 if new)
if redis.call('HEXISTS', K_META, 'kind') == 0 then
  local m = tonumber(ARGV[4])
  if m < 0 then m = 0 end
  redis.call('HSET', K_META, 'kind', ARGV[2], 'fingerprint', ARGV[3],
    'maxsize', m, 'version', '1')
  redis.call('HSETNX', K_META, 'unfinished', 0)
end
return redis.call('HMGET', K_META, 'kind', 'fingerprint', 'maxsize', 'version')
