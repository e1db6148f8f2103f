# A no-op Sidekiq job, for Benchmarks/queue.sh.
require "sidekiq"

class NoopJob
  include Sidekiq::Worker
  def perform(n); end
end
