# push_bulk N no-op jobs, start `sidekiq -c C` (basic fetch), time the drain. Prints jobs/s.
require "sidekiq"
require "sidekiq/api"
require_relative "noop"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

count = Integer(ARGV[0])
concurrency = Integer(ARGV[1])
Sidekiq::Queue.new.clear
Sidekiq::Stats.new.reset
count.times.each_slice(1000) { |slice| Sidekiq::Client.push_bulk("class" => NoopJob, "args" => slice.map { |n| [n] }) }
pid = spawn("sidekiq", "-c", concurrency.to_s, "-r", File.join(__dir__, "noop.rb"), out: File::NULL, err: File::NULL)
queue = Sidekiq::Queue.new
start = nil
loop do
  size = queue.size
  start ||= Process.clock_gettime(Process::CLOCK_MONOTONIC) if size < count
  break if size.zero?
  sleep 0.005
end
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - start
puts format("sidekiq %s: %d no-op jobs, concurrency %d: %d jobs/s (timed from the first fetch until the queue is empty)",
            Sidekiq::VERSION, count, concurrency, count / elapsed)
Process.kill("TERM", pid)
Process.wait(pid)
