// go-decode: decodes each line of stdin (one JSON object) with Go's encoding/json into Conf and
// prints it back as JSON, one line each: the reference behaviour that pkg/cni/go-keys.test.ts
// compares goKeys + zod with. Pointers and omitempty keep absent fields absent.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

type Mapping struct {
	HostPort      *int    `json:"hostPort,omitempty"`
	ContainerPort *int    `json:"containerPort,omitempty"`
	Protocol      *string `json:"protocol,omitempty"`
	HostIP        *string `json:"hostIP,omitempty"`
}

type Twin struct {
	Lower *int `json:"hostPort,omitempty"`
	Upper *int `json:"HostPort,omitempty"`
}

type Subnet struct {
	Subnet *string `json:"subnet,omitempty"`
}

type RuntimeConfig struct {
	PortMappings []Mapping          `json:"portMappings,omitempty"`
	Aliases      map[string][]string `json:"aliases,omitempty"`
}

type Ipam struct {
	Type   *string    `json:"type,omitempty"`
	Ranges [][]Subnet `json:"ranges,omitempty"`
}

type Conf struct {
	K             *int              `json:"k,omitempty"`
	S             *string           `json:"s,omitempty"`
	Kind          *string           `json:"kind,omitempty"`
	Name          *string           `json:",omitempty"`
	Sigma         *string           `json:"σ,omitempty"`
	RuntimeConfig *RuntimeConfig    `json:"runtimeConfig,omitempty"`
	Sysctl        map[string]string `json:"sysctl,omitempty"`
	Twin          *Twin             `json:"twin,omitempty"`
	Ipam          *Ipam             `json:"ipam,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var c Conf
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Printf("{\"error\":%q}\n", err.Error())
			continue
		}
		out, _ := json.Marshal(c)
		fmt.Println(string(out))
	}
}
