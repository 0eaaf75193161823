-- put: appends as many of the items as there is room for, atomically (the
-- room check and the push are one script, so concurrent producers can never
-- exceed maxsize). Returns how many went in; 0 means the queue is full, -1
-- that it is shut down (nothing went in).
-- ARGV: prefix, maxsize, joinable (0/1), producer id, sequence number, items...
--
-- Idempotency: each producer handle numbers its calls; the last sequence
-- number and its outcome are kept under a per-producer key, so a call
-- retried after its reply was lost is answered from there instead of
-- enqueueing the items a second time.
local maxsize = tonumber(ARGV[2])
local joinable = ARGV[3] == '1'
local pkey = PREFIX .. ':producer:' .. ARGV[4]
local prev = redis.call('GET', pkey)
if prev then
  local s, n = string.match(prev, '^(%d+):(%d+)$')
  if s == ARGV[5] then return tonumber(n) end
end
if shut_state() > 0 then return -1 end
local n = #ARGV - 5
if maxsize > 0 then
  local room = maxsize - queued()
  if room <= 0 then
    -- Every space token is stale now (there is no space): the caller will
    -- wait for one pushed by a later get.
    redis.call('DEL', K_SPACE)
    return 0
  end
  if room < n then n = room end
end
redis.call('RPUSH', K_ITEMS, unpack(ARGV, 6, 5 + n))
if joinable then redis.call('HINCRBY', K_META, 'unfinished', n) end
-- A plain unbounded queue's getters block on the items list itself.
if joinable or maxsize > 0 then signal(K_AVAIL, n) end
redis.call('SET', pkey, ARGV[5] .. ':' .. n, 'PX', 3600000)
return n
