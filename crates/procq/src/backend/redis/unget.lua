-- unget: puts items a plain queue's get took back at the head, in order
-- (a get_async dropped while its worker took them: see calls.rs). Unless the
-- queue was shut down immediately meanwhile: then they are dropped, as the
-- shutdown dropped what was queued. Room is not checked: the items held
-- room a moment ago, so a bounded queue may hold up to their number more
-- than maxsize until the next gets.
-- ARGV: prefix, items...
if shut_state() == 2 then return 0 end
local xs = {}
for i = #ARGV, 2, -1 do xs[#xs + 1] = ARGV[i] end
push('LPUSH', K_ITEMS, xs)
-- (A plain unbounded queue's getters block on the items list itself.)
if tonumber(redis.call('HGET', K_META, 'maxsize') or '0') > 0 then
  signal(K_AVAIL, #xs)
end
return #xs
