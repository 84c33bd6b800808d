fetch(:vars).fetch("hosts").each { |h| server h, user: "root", roles: %w[app] }
