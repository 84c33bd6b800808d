lock "~> 3.17"

set :vars, JSON.parse(File.read(ENV.fetch("FLASK_OPS_VARS")))
set :application, fetch(:vars).fetch("app")
set :deploy_to, fetch(:vars).fetch("base")
set :keep_releases, 5
set :format_options, log_file: nil, command_output: false
set :ssh_options, config: ENV.fetch("SSH_CONFIG"), verify_host_key: :always
