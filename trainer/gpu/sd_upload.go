package gpu

import "fmt"

// UploadTrainable copies the host values of the trainable parameters to
// the device: after a host optimizer step or a restored checkpoint.
func (s *SDNet) UploadTrainable() error {
	if s.host != nil {
		if err := s.host.Wait(); err != nil {
			return fmt.Errorf("gpu: host optimizer: %w", err)
		}
	}
	for _, q := range s.trainable {
		if err := s.weights[q.Name].Upload(q.Data); err != nil {
			return fmt.Errorf("gpu: upload %s: %w", q.Name, err)
		}
	}
	return nil
}
