package spawner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// ensureDirs creates the user's workspace, the exchange and the course data
// directory under the storage root before the first start, so a volume
// never binds a missing directory. Existing directories are left as they are.
func (m *Manager) ensureDirs(user string) error {
	if m.o.StorageMount == "" {
		return nil
	}
	users := filepath.Join(m.o.StorageMount, identity.UsersDir)
	if err := os.MkdirAll(users, 0o755); err != nil {
		return fmt.Errorf("create %s on the storage root: %w", users, err)
	}
	ws := filepath.Join(m.o.StorageMount, identity.WorkspaceDir(user))
	created, err := mkdir(ws, 0o755)
	if err != nil {
		return fmt.Errorf("create workspace %s: %w", ws, err)
	}
	if created {
		// The notebook runs as jovyan (1000:100); without root we cannot
		// chown, which is fine on setups where the orchestrator already runs
		// as that user.
		if err := os.Chown(ws, m.o.UID, m.o.GID); err != nil {
			m.log.Warn("cannot hand the new workspace to the notebook user", "dir", ws, "uid", m.o.UID, "gid", m.o.GID, "err", err)
		}
	}
	if m.o.Spec.ExchangeDir != "" {
		ex := filepath.Join(m.o.StorageMount, "exchange")
		created, err := mkdir(ex, 0o777)
		if err != nil {
			return fmt.Errorf("create exchange directory %s: %w", ex, err)
		}
		if created {
			// nbgrader's inbound must be writable by every student; the
			// umask would otherwise take the bits away.
			if err := os.Chmod(ex, 0o777); err != nil {
				return fmt.Errorf("make exchange directory %s world-writable: %w", ex, err)
			}
		}
	}
	if m.o.Spec.CourseDataPath != "" {
		course := filepath.Join(m.o.StorageMount, courseDataDir)
		created, err := mkdir(course, 0o755)
		if err != nil {
			return fmt.Errorf("create course data directory %s: %w", course, err)
		}
		if created {
			// Instructors write it as jovyan (1000:100), as for a workspace;
			// students cannot, whatever the mode: their mount is read-only.
			if err := os.Chown(course, m.o.UID, m.o.GID); err != nil {
				m.log.Warn("cannot hand the course data directory to the notebook user; instructors cannot write it", "dir", course, "uid", m.o.UID, "gid", m.o.GID, "err", err)
			}
		}
	}
	return nil
}

// mkdir creates dir and reports whether it did.
func mkdir(dir string, perm fs.FileMode) (bool, error) {
	err := os.Mkdir(dir, perm)
	if errors.Is(err, fs.ErrExist) {
		fi, serr := os.Stat(dir)
		if serr != nil {
			return false, serr
		}
		if !fi.IsDir() {
			return false, fmt.Errorf("%s exists and is not a directory", dir)
		}
		return false, nil
	}
	return err == nil, err
}
