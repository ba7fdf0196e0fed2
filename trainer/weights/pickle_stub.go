package weights

import "fmt"

func readTorchZip(sf *sharedFile) (map[string]rawTensor, error) {
	return nil, fmt.Errorf("PyTorch zip files are not supported yet")
}
