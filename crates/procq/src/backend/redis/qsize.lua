-- qsize: items waiting in the queue (a joinable queue's retry list
-- included; in-flight items not).
-- ARGV: prefix
return queued()
