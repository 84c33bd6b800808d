require "capistrano/scm/plugin"

# Ships the release as one archive built on the deploying machine (the targets are offline).
class ArchiveSCM < Capistrano::SCM::Plugin
  def define_tasks
    namespace :archive do
      task :check do
        archive = fetch(:vars).fetch("archive")
        raise "no release archive at #{archive}" unless File.file?(archive)
      end

      task :create_release do
        vars = fetch(:vars)
        remote = "#{shared_path}/archives/release-#{vars.fetch('release_id')}.tar.gz"
        on release_roles(:all) do
          execute :mkdir, "-p", "#{shared_path}/archives", release_path
          upload! vars.fetch("archive"), remote unless test("[ -f #{remote} ]")
          execute :tar, "-xzf", remote, "-C", release_path
        end
      end

      task :set_current_revision do
        set :current_revision, fetch(:vars).fetch("release_id")
      end
    end
  end

  def register_hooks
    after "deploy:new_release_path", "archive:create_release"
    before "deploy:check", "archive:check"
    before "deploy:set_current_revision", "archive:set_current_revision"
  end
end
