-- task_done: acknowledges items of this consumer, each named by its get
-- request's number and its index there, given as triples (request, from,
-- to) of index ranges. A range covering a whole request (a batch
-- acknowledged with task_done_many) drops that request at once: no
-- per-item work. Items acknowledged one by one are marked in the
-- request's bitmap until all of them are. Each item still held counts as
-- a finished task. One already acknowledged (a retry after a lost reply),
-- or whose request is no longer held (the lease ran out and the item went
-- back to the queue, or to the dead-letter queue, where its next owner or
-- the move counts it), counts nothing: acknowledging is idempotent and a
-- late one never touches another item. Returns how many were counted.
-- ARGV: prefix, consumer id, lease ms, seq1, from1, to1, seq2, from2, to2...
local c = ARGV[2]
local k_reqs, held_, acks_, dmap_ = consumer_keys(c)
local done = 0
for i = 4, #ARGV - 2, 3 do
  local seq, from, to = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local held, bits = held_ .. seq, acks_ .. seq
  local count = redis.call('LLEN', held)
  to = math.min(to, count - 1)
  if from <= to then
    local whole = from == 0 and to == count - 1 and redis.call('EXISTS', bits) == 0
    if whole then
      done = done + count
    else
      for n = from, to do
        if redis.call('SETBIT', bits, n, 1) == 0 then done = done + 1 end
      end
      whole = redis.call('BITCOUNT', bits) == count
    end
    if whole then
      redis.call('DEL', held, bits, dmap_ .. seq)
      redis.call('SREM', k_reqs, seq)
    end
  end
end
finish(done)
if done > 0 then
  if redis.call('EXISTS', k_reqs) == 0 then
    -- Nothing held any more.
    redis.call('ZREM', K_LEASES, c)
  else
    redis.call('ZADD', K_LEASES, 'XX', now_ms() + tonumber(ARGV[3]), c)
  end
end
return done
