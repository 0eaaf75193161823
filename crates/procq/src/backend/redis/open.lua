-- open: returns the queue's metadata, creating it first if it is missing and
-- the caller may create (so that `open` never creates, in one atomic step).
-- ARGV: prefix, kind, fingerprint, maxsize (-1 = "whatever it is", 0 if new),
--       max_deliveries (-1 = not given), create (1 = may create, 0 = never,
--       2 = must create: an exclusive create, like O_EXCL)
-- Returns nil if the queue is missing and may not be created, 0 if it
-- exists and the caller must create it (of several exclusive creators
-- racing, exactly one finds it missing: the check and the creation are
-- this one atomic step).
-- A joinable queue stores envelopes (layout version 2); a plain queue the
-- items as they are (version 1). A joinable queue without max_deliveries
-- takes the first one a URL gives; the caller checks the value it gets.
if redis.call('HEXISTS', K_META, 'kind') == 0 then
  if ARGV[6] == '0' then return false end
  local m = tonumber(ARGV[4])
  if m < 0 then m = 0 end
  local version = '1'
  if ARGV[2] == '2' then version = '2' end
  redis.call('HSET', K_META, 'kind', ARGV[2], 'fingerprint', ARGV[3],
    'maxsize', m, 'version', version)
  redis.call('HSETNX', K_META, 'unfinished', 0)
elseif ARGV[6] == '2' then
  return 0
end
if tonumber(ARGV[5]) > 0 and redis.call('HGET', K_META, 'kind') == '2' then
  redis.call('HSETNX', K_META, 'max_deliveries', ARGV[5])
end
return redis.call('HMGET', K_META, 'kind', 'fingerprint', 'maxsize', 'version',
  'max_deliveries')
