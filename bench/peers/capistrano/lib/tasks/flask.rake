# The app's side of the deploy: venv, configs, reloads, health check.

# What changed on each host (SSHKit hands every `on` block its own copy of the host).
CHANGED = Hash.new { |hash, name| hash[name] = {} }

def install_config(src, dest)
  # upload next to the file; move in only when it differs. Prints "changed" then.
  upload! src, "#{dest}.cap-new"
  capture("cmp -s #{dest}.cap-new #{dest} && rm #{dest}.cap-new || " \
          "{ mv #{dest}.cap-new #{dest} && echo changed; }") == "changed"
end

namespace :flask do
  desc "Stop when the release is already current (Capistrano makes a new release every time)"
  task :skip_if_current do
    id = fetch(:vars).fetch("release_id")
    current = []
    on roles(:app) do |host|
      current << (capture("cat #{current_path}/REVISION 2>/dev/null || true") == id)
    end
    if current.all?
      puts "no change: #{id} is already current"
      exit 0
    end
  end

  task :venv do
    vars = fetch(:vars)
    digest = vars.fetch("requirements_digest")
    venv = "#{shared_path}/venvs/cap"
    wheels = "#{shared_path}/wheelhouse/cap"
    on roles(:app) do
      unless test("[ -f #{venv}/.installed-#{digest} ]")
        remote = "#{shared_path}/archives/wheelhouse-#{digest}.tar.gz"
        upload! vars.fetch("wheels_archive"), remote
        execute "mkdir -p #{wheels} && tar -xzf #{remote} -C #{wheels} && " \
                "(test -x #{venv}/bin/python || /usr/bin/python3 -m venv #{venv}) && " \
                "#{venv}/bin/pip install -q --no-index --disable-pip-version-check " \
                "--find-links #{wheels} -r #{release_path}/requirements.txt && " \
                "touch #{venv}/.installed-#{digest}"
      end
      execute :ln, "-sfn", venv, "#{release_path}/venv"
    end
  end

  task :configs do
    vars = fetch(:vars)
    app, rendered = vars.fetch("app"), vars.fetch("rendered")
    on roles(:app) do |host|
      ini = install_config("#{rendered}/etc/flask-ops/#{app}/uwsgi.ini", "/etc/flask-ops/#{app}/uwsgi.ini")
      units = ["#{app}-uwsgi.socket", "#{app}-uwsgi.service"].map do |u|
        install_config("#{rendered}/etc/systemd/system/#{u}", "/etc/systemd/system/#{u}")
      end.any?
      sites = ["#{app}.conf", "000-flask-ops-catchall-80.conf"].map do |site|
        changed = install_config("#{rendered}/etc/nginx/sites-available/#{site}",
                                 "/etc/nginx/sites-available/#{site}")
        enabled = test("[ -L /etc/nginx/sites-enabled/#{site} ]")
        execute :ln, "-sfn", "/etc/nginx/sites-available/#{site}", "/etc/nginx/sites-enabled/#{site}" unless enabled
        changed || !enabled
      end.any?
      CHANGED[host.hostname].update(units: units, sites: sites, ini: ini)
    end
  end

  task :reload do
    vars = fetch(:vars)
    app = vars.fetch("app")
    on roles(:app) do |host|
      changed = CHANGED[host.hostname]
      if changed[:units]
        execute "systemctl daemon-reload && systemctl enable -q #{app}-uwsgi.socket #{app}-uwsgi " \
                "&& systemctl restart #{app}-uwsgi.socket #{app}-uwsgi"
      else
        execute "systemctl reload-or-restart #{app}-uwsgi"
      end
      execute "nginx -t -q && systemctl reload nginx" if changed[:sites]
      execute "for i in $(seq 50); do curl -fsS -H 'Host: #{vars.fetch('server_name')}' " \
              "http://127.0.0.1/healthz | grep -q '\"#{release_path}\"' && exit 0; sleep 0.2; done; exit 1"
    end
  end
end

before "deploy:starting", "flask:skip_if_current"
after "deploy:updated", "flask:venv"
after "flask:venv", "flask:configs"
after "deploy:published", "flask:reload"
